module scanagent

go 1.25.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/creack/pty v1.1.24
	github.com/kardianos/service v1.3.0
	go.bug.st/serial v1.8.0
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.45.0
)

require golang.org/x/text v0.41.0

require go.yaml.in/yaml/v3 v3.0.6

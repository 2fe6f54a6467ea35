module scanagent

go 1.25.0

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/creack/goselect v0.1.2 // indirect
	github.com/creack/pty v1.1.24 // indirect
	github.com/kardianos/service v1.3.0 // indirect
	go.bug.st/serial v1.8.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
)

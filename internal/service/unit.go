package service

import (
	"strings"
)

// Unit is what varies in the systemd unit between the package (the binary
// in /usr/bin, the config in /etc/scanagent) and `service install` from
// another place.
type Unit struct {
	Executable     string
	ConfigPath     string
	ReadWritePaths []string // besides the StateDirectory /var/lib/scanagent
}

// PackagedUnit is the unit the .deb/.rpm ship as
// packaging/systemd/scanagent.service (a test keeps the file identical).
var PackagedUnit = Unit{Executable: "/usr/bin/scanagent", ConfigPath: "/etc/scanagent/config.toml"}

// UnitText is the hardened systemd unit: a dedicated user in the dialout
// group, the queue in the StateDirectory, the file system read-only
// otherwise, waiting for a valid config (run --wait-config), restarted 5 s after any
// exit, and a stop timeout well past the agent's own bound.
func UnitText(u Unit) string {
	exe, cfg := systemdQuote(u.Executable), systemdQuote(u.ConfigPath)
	var rw string
	if len(u.ReadWritePaths) > 0 {
		q := make([]string, len(u.ReadWritePaths))
		for i, p := range u.ReadWritePaths {
			q[i] = "-" + systemdQuote(p)
		}
		rw = "ReadWritePaths=" + strings.Join(q, " ") + "\n"
	}
	r := strings.NewReplacer("@EXE@", exe, "@CONFIG@", cfg, "@READWRITE@\n", rw)
	return r.Replace(unitTemplate)
}

// systemdQuote quotes s for a systemd command line or path list: specifiers
// (%) and variables ($) are escaped, and a path with blanks or quotes is put
// in double quotes.
func systemdQuote(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

const unitTemplate = `# systemd unit for scanagent, shipped by the .deb/.rpm packages and written
# by "scanagent service install". Change it with "systemctl edit scanagent",
# not by editing this file. The agent runs as the system user "scanagent"
# (group dialout for the serial ports) and may write only its state
# directory /var/lib/scanagent: a data_dir or log_file elsewhere needs
# ReadWritePaths= in an override.
#
# The client secret: keep it out of Environment= (any user can read that
# with "systemctl show") and out of the config. Put it in a root-only file
# and hand it to the service as a credential, in an override:
#   [Service]
#   LoadCredential=client_secret:/etc/scanagent/client_secret
# The agent reads $CREDENTIALS_DIRECTORY/client_secret first; set
# client_secret_file = "/etc/scanagent/client_secret" too, so that
# "scanagent config check" run as root finds the same secret.
[Unit]
Description=scanagent - campus scan terminal agent
Documentation=file:///usr/share/doc/scanagent/README.md
After=network-online.target
Wants=network-online.target
# Keep retrying after a crash, however often.
StartLimitIntervalSec=0

[Service]
Type=simple
User=scanagent
Group=scanagent
SupplementaryGroups=dialout
# --wait-config: an unconfigured or broken config.toml is reported once in
# the journal and the agent waits for it to be fixed, instead of failing
# and restarting every 5 s.
ExecStart=@EXE@ --config @CONFIG@ run --wait-config
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=5
# The agent stops within 20 s of SIGTERM (readers, in-flight uploads, queue).
TimeoutStopSec=30
KillMode=mixed
SyslogIdentifier=scanagent
StateDirectory=scanagent
StateDirectoryMode=0700
@READWRITE@
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
DevicePolicy=closed
DeviceAllow=char-ttyS rw
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyAMA rw

[Install]
WantedBy=multi-user.target
`

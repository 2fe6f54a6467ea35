//go:build !windows

package service

import kservice "github.com/kardianos/service"

// runAs is the account the service runs as, "" for kardianos' default:
// the systemd unit names its own user.
const runAs = ""

// beforeInstall has nothing to check outside Windows: `service install`
// refuses paths the hardened unit cannot reach (cmd/scanagent).
func beforeInstall(Definition) error { return nil }

// afterInstall has nothing to add outside Windows: the unit says
// Restart=always, and the service's user and StateDirectory keep its files.
func afterInstall(Definition) error { return nil }

// selfStop is nil outside Windows: kardianos' RunWait notices that run has
// ended.
var selfStop func(kservice.Service) error

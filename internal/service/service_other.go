//go:build !windows

package service

import kservice "github.com/kardianos/service"

// afterInstall has nothing to add outside Windows: the unit says
// Restart=always.
func afterInstall() error { return nil }

// selfStop is nil outside Windows: kardianos' RunWait notices that run has
// ended.
var selfStop func(kservice.Service) error

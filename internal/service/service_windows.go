package service

import (
	"fmt"
	"time"

	kservice "github.com/kardianos/service"
	"golang.org/x/sys/windows/svc/mgr"
)

// runAs is the account the service runs as: its virtual account.
const runAs = VirtualAccount

// afterInstall sets the recovery actions and locks down the service's
// directories and files (lockdown_windows.go).
func afterInstall(def Definition) error {
	if err := setRecovery(); err != nil {
		return err
	}
	return lockDown(def)
}

// setRecovery sets the recovery actions (restart after 5 s, 30 s, then
// every 60 s) and applies them to non-crash failures too: a service that
// stops with a non-zero exit code, as scanagent does when its configuration
// is wrong, is then restarted like one that crashed.
func setRecovery() error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("recovery actions: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(Name)
	if err != nil {
		return fmt.Errorf("recovery actions: %w", err)
	}
	defer s.Close()
	actions := make([]mgr.RecoveryAction, len(recovery.delays))
	for i, d := range recovery.delays {
		actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d}
	}
	if err := s.SetRecoveryActions(actions, uint32(recovery.resetPeriod/time.Second)); err != nil {
		return fmt.Errorf("recovery actions: %w", err)
	}
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("recovery actions for non-crash failures: %w", err)
	}
	return nil
}

// selfStop asks the service control manager to stop this service: the
// kardianos Windows host ends only on a control request.
func selfStop(s kservice.Service) error { return s.Stop() }

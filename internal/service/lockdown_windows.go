package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// beforeInstall refuses to install a service whose executable or
// configuration ordinary users could change: the service would run what
// they put there. The files and the folders holding them are checked.
func beforeInstall(def Definition) error {
	files := append([]string{def.Executable}, def.PrivateFiles...)
	for _, f := range files {
		for _, p := range []struct {
			path string
			dir  bool
		}{{f, false}, {filepath.Dir(f), true}} {
			sddl, err := readSDDL(p.path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("reading the permissions of %s: %w", p.path, err)
			}
			group, err := WritableByOrdinaryUsers(sddl, p.dir)
			if err != nil {
				return fmt.Errorf("reading the permissions of %s: %w", p.path, err)
			}
			if group != "" {
				return fmt.Errorf("%s can be changed by %s, and the service would run what they put there: "+
					"put scanagent.exe in C:\\Program Files\\scanagent and the configuration in C:\\ProgramData\\scanagent, "+
					"or remove their write access (icacls \"%s\" /inheritance:r /grant:r SYSTEM:F Administrators:F Users:RX), then install again",
					p.path, group, p.path)
			}
		}
	}
	return nil
}

// lockDown gives the service's directories (created if missing) and files
// a protected ACL: SYSTEM, Administrators and the service's own account
// only. A file that does not exist yet is skipped.
func lockDown(def Definition) error {
	sid := ServiceSID(Name)
	for _, d := range def.PrivateDirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("lock down %s: %w", d, err)
		}
		if err := writeSDDL(d, PrivateDirSDDL(sid)); err != nil {
			return fmt.Errorf("lock down %s: %w", d, err)
		}
	}
	for _, f := range def.PrivateFiles {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := writeSDDL(f, PrivateFileSDDL(sid)); err != nil {
			return fmt.Errorf("lock down %s: %w", f, err)
		}
	}
	return nil
}

// readSDDL reads the owner and DACL of a file or directory as SDDL.
func readSDDL(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return "", err
	}
	return sd.String(), nil
}

// writeSDDL replaces the DACL of path with the one in sddl, protected from
// inheritance; Windows passes inheritable entries on to what is inside a
// directory.
func writeSDDL(path, sddl string) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}

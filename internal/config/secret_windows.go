package config

import "os"

// serviceGroup names the service's account in messages (Windows: the
// virtual account NT SERVICE\scanagent).
var serviceGroup = "scanagent"

// othersCanRead is false on Windows: the ACLs of the configuration and of
// data_dir are set and checked by `service install` (internal/service).
func othersCanRead(string) (os.FileMode, bool) { return 0, false }

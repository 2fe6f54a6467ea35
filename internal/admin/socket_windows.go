package admin

// restrictSocket does nothing on Windows: the socket file inherits the ACL
// of data_dir, which `service install` limits to SYSTEM, Administrators and
// the service's account (internal/service).
func restrictSocket(path, dir string) error { return nil }

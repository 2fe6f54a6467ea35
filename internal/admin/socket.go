package admin

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// SocketFile is the name of the queue API's socket in data_dir.
const SocketFile = "admin.sock"

// listenSocket listens on the AF_UNIX socket at path. The socket is a file
// in data_dir, and that directory is the access control: to connect, a
// process must be able to enter data_dir and write the socket file. The
// socket is made mode 0600 (the agent's user only), or 0660 when data_dir
// lets its group in too and the socket could be given data_dir's group:
// whoever may read data_dir, and so the queue file itself, may use the API;
// nobody else. On Windows the file inherits data_dir's ACL (set by
// `service install`).
//
// A file left at path by an agent that was killed is removed first: the
// caller holds the queue file's lock, so no other agent serves it.
func listenSocket(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory: remove it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := restrictSocket(path, filepath.Dir(path)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set the permissions of %s: %w", path, err)
	}
	return ln, nil
}

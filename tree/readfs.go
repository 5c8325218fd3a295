package tree

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// genFS is a generation directory as the format decoders read it: os.DirFS,
// with ReadFile done in plain system calls. Loading a tree reads one record
// file per service, and an os.File costs more than the read of a small
// record (descriptor flags, poller registration, a finalizer).
type genFS struct {
	fs.FS
	dir string
}

func newGenFS(dir string) genFS { return genFS{FS: os.DirFS(dir), dir: dir} }

// ReadFile reads a regular file of the generation. Anything else where a
// record belongs is an error: a symbolic link could lead outside the tree,
// and opening a FIFO could block.
func (g genFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	path := g.dir + "/" + name
	fd, err := retry(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	})
	if err == unix.ELOOP {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	// One byte more than the size, so that a single read normally returns
	// the whole file and the next one its end.
	b := make([]byte, 0, st.Size+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := retry(func() (int, error) { return unix.Read(fd, b[len(b):cap(b)]) })
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

type notRegular struct{}

func (notRegular) Error() string { return "not a regular file" }

var errNotRegular error = notRegular{}

func retry(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}

//go:build unix

package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"golang.org/x/sys/unix"
)

// ErrSymlink is wrapped by FS when a path is, or goes through, a symbolic link.
var ErrSymlink = errors.New("symbolic link: not followed")

// ErrNotDir is wrapped by FS when a path names a file where a directory is needed.
var ErrNotDir = errors.New("not a directory")

// SymlinkError names the symbolic links a call met. From List, Links are the
// children that are links (the other children are returned beside the error); from
// other calls, Links holds the path itself, which is or goes through one.
type SymlinkError struct {
	Links []string
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("%s: %v", strings.Join(e.Links, ", "), ErrSymlink)
}

// Is makes errors.Is(err, ErrSymlink) true.
func (e *SymlinkError) Is(target error) bool { return target == ErrSymlink }

// FS is distribution's filesystem driver with the rules an offline collector needs
// on a local tree. No symbolic link below the root is followed by any call: List
// leaves links out and names them in a *SymlinkError; Stat, GetContent, Reader and
// Delete refuse a path that is or goes through one (the registry would follow it,
// so what lies behind one is live as far as we can tell, and deleting through one
// deletes another tree). Reads go to the OS directly, without the base wrapper's
// per-call path regexp (see ReadDriver). Writes, which only tests make, go to
// distribution's driver.
type FS struct {
	driver.StorageDriver
	root string

	mu     sync.Mutex
	rootFD int // -1 until the root directory could be opened
}

var _ driver.StorageDriver = (*FS)(nil)

// NewFS wraps distribution's filesystem driver d, whose root directory is root.
func NewFS(d driver.StorageDriver, root string) *FS {
	return &FS{StorageDriver: d, root: root, rootFD: -1}
}

// NewFilesystem creates distribution's filesystem driver for root, wrapped by FS.
func NewFilesystem(root string) *FS {
	return NewFS(filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100}), root)
}

// Root returns the root directory as configured.
func (f *FS) Root() string { return f.root }

// dirFD returns a descriptor of the root directory, opening it on first use: the
// root may be created after the driver (a test pushing through it).
func (f *FS) dirFD(p string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rootFD >= 0 {
		return f.rootFD, nil
	}
	fd, err := unix.Open(f.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return -1, driver.PathNotFoundError{Path: p, DriverName: f.Name()}
	}
	if err != nil {
		return -1, fmt.Errorf("open storage root %s: %w", f.root, err)
	}
	f.rootFD = fd
	return fd, nil
}

// rel turns a driver path into one relative to the root, refusing what would leave it.
func rel(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q is not absolute: %w", p, ErrBadPath)
	}
	r := strings.TrimPrefix(path.Clean(p), "/")
	for _, c := range strings.Split(r, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q leaves the root: %w", p, ErrBadPath)
		}
	}
	if r == "" {
		r = "."
	}
	return r, nil
}

// open opens p below the root without following any symbolic link.
func (f *FS) open(p string, flags int) (*os.File, error) {
	r, err := rel(p)
	if err != nil {
		return nil, err
	}
	root, err := f.dirFD(p)
	if err != nil {
		return nil, err
	}
	fd, err := openBeneath(root, r, flags|unix.O_CLOEXEC)
	if err != nil {
		return nil, f.pathError(p, "open", err)
	}
	return os.NewFile(uintptr(fd), path.Join(f.root, r)), nil
}

// pathError maps an errno to the driver's errors and ours.
func (f *FS) pathError(p, op string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return driver.PathNotFoundError{Path: p, DriverName: f.Name()}
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return &SymlinkError{Links: []string{p}}
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s %s: %w", op, p, ErrNotDir)
	}
	return &os.PathError{Op: op, Path: path.Join(f.root, p), Err: err}
}

// List implements driver.StorageDriver. Children that are symbolic links are left
// out and named by a *SymlinkError returned with the others.
func (f *FS) List(_ context.Context, p string) ([]string, error) {
	d, err := f.open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, &os.PathError{Op: "list", Path: d.Name(), Err: err}
	}
	keys := make([]string, 0, len(entries))
	var links []string
	for _, e := range entries {
		k := path.Join(p, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			links = append(links, k)
			continue
		}
		keys = append(keys, k)
	}
	if len(links) > 0 {
		return keys, &SymlinkError{Links: links}
	}
	return keys, nil
}

// Stat implements driver.StorageDriver; a symbolic link is an error, not its target.
func (f *FS) Stat(_ context.Context, p string) (driver.FileInfo, error) {
	// O_PATH opens without reading; a trailing link fails like any other.
	d, err := f.open(p, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return nil, f.pathError(p, "stat", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK { // O_PATH|O_NOFOLLOW opens the link itself
		return nil, &SymlinkError{Links: []string{p}}
	}
	return fileInfo{p: p, size: st.Size, mod: time.Unix(st.Mtim.Unix()), dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
}

type fileInfo struct {
	p    string
	size int64
	mod  time.Time
	dir  bool
}

func (i fileInfo) Path() string { return i.p }
func (i fileInfo) Size() int64 {
	if i.dir {
		return 0
	}
	return i.size
}
func (i fileInfo) ModTime() time.Time { return i.mod }
func (i fileInfo) IsDir() bool        { return i.dir }

// GetContent implements driver.StorageDriver.
func (f *FS) GetContent(ctx context.Context, p string) ([]byte, error) {
	rc, err := f.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Reader implements driver.StorageDriver.
func (f *FS) Reader(_ context.Context, p string, offset int64) (io.ReadCloser, error) {
	file, err := f.open(p, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := file.Seek(offset, io.SeekStart); err != nil {
			file.Close()
			return nil, err
		}
	}
	return file, nil
}

// Walk implements driver.StorageDriver through List and Stat, so it follows no link.
func (f *FS) Walk(ctx context.Context, p string, fn driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	return driver.WalkFallback(ctx, f, p, fn, opts...)
}

// Delete implements driver.StorageDriver. It removes p and everything below it, but
// only when neither p nor any directory above it (up to the root) is a symbolic
// link: the registry follows links, so deleting through one deletes data of a tree
// that is not this storage. Links below p are removed, never followed.
func (f *FS) Delete(_ context.Context, p string) error {
	r, err := rel(p)
	if err != nil {
		return err
	}
	if r == "." {
		return fmt.Errorf("delete %s: refusing to delete the storage root", f.root)
	}
	dir, base := path.Split(r)
	parent, err := f.open("/"+dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		if isNotFoundErr(err) {
			return driver.PathNotFoundError{Path: p, DriverName: f.Name()}
		}
		return fmt.Errorf("delete %s: %w", p, err)
	}
	defer parent.Close()
	var st unix.Stat_t
	if err := unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return f.pathError(p, "delete", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("delete %s: %w", p, &SymlinkError{Links: []string{p}})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(int(parent.Fd()), base, 0); err != nil {
			return f.pathError(p, "delete", err)
		}
		return nil
	}
	// os.Root removes below the parent without leaving it, and removes links
	// inside the directory rather than what they point at.
	pr, err := os.OpenRoot(parent.Name())
	if err != nil {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	defer pr.Close()
	if err := pr.RemoveAll(base); err != nil {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}

// RemoveEmptyDir removes the directory p if it is empty and neither it nor anything
// above it is a symbolic link. It reports whether it did.
func (f *FS) RemoveEmptyDir(p string) bool {
	r, err := rel(p)
	if err != nil || r == "." {
		return false
	}
	dir, base := path.Split(r)
	parent, err := f.open("/"+dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return false
	}
	defer parent.Close()
	// AT_REMOVEDIR removes only an empty directory, and never a link.
	return unix.Unlinkat(int(parent.Fd()), base, unix.AT_REMOVEDIR) == nil
}

func isNotFoundErr(err error) bool {
	var nf driver.PathNotFoundError
	return errors.As(err, &nf)
}

// openBeneath opens name below the directory dirfd, failing with ELOOP if any
// component is a symbolic link and never leaving dirfd: openat2 with
// RESOLVE_NO_SYMLINKS where the kernel has it, else one component at a time with
// O_NOFOLLOW.
func openBeneath(dirfd int, name string, flags int) (int, error) {
	if fd, err := openat2NoSymlinks(dirfd, name, flags); err != errNoOpenat2 {
		return fd, err
	}
	parts := strings.Split(name, "/")
	fd := dirfd
	closeFD := func() {
		if fd != dirfd {
			unix.Close(fd)
		}
	}
	for i, c := range parts {
		last := i == len(parts)-1
		fl := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			fl = flags | unix.O_NOFOLLOW
		}
		next, err := unix.Openat(fd, c, fl, 0)
		if err == unix.ENOTDIR && !last {
			// A link to a directory fails O_NOFOLLOW|O_DIRECTORY with ENOTDIR on some
			// systems: say which.
			var st unix.Stat_t
			if unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		closeFD()
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

var errNoOpenat2 = errors.New("openat2 unavailable")

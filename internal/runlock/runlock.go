// Package runlock keeps two runs that delete from one storage apart. The lock is
// keyed by the storage's identity (storage.ID: a filesystem root's real path, an
// object store's bucket and prefix), not by an index directory, so that the same
// storage spelled differently, reached through a symbolic link, or given another
// --index is still one lock. It is an flock on a file under the system's temporary
// directory: it holds between processes of one machine, and the kernel releases it
// when the holder dies.
package runlock

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrHeld is wrapped by Acquire when another process holds the lock.
var ErrHeld = errors.New("another regsweep is deleting from this storage")

// Holder describes the process that holds a lock.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
	Storage string    `json:"storage"`
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d on %s since %s: %s", h.PID, h.Host, h.Since.Format(time.RFC3339), h.Command)
}

// Lock is a held lock.
type Lock struct{ f *os.File }

// Dir is where lock files live; tests point it elsewhere.
var Dir = filepath.Join(os.TempDir(), "regsweep-locks")

// Acquire takes the lock of the storage named id without waiting.
func Acquire(id string) (*Lock, error) {
	if err := os.MkdirAll(Dir, 0o1777); err != nil {
		return nil, fmt.Errorf("lock directory %s: %w", Dir, err)
	}
	_ = os.Chmod(Dir, 0o1777) // past the umask, so that other users can lock too

	sum := sha256.Sum256([]byte(id))
	name := filepath.Join(Dir, hex.EncodeToString(sum[:12])+".lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			var h Holder
			if b, rerr := os.ReadFile(name); rerr == nil && json.Unmarshal(b, &h) == nil && h.PID != 0 {
				return nil, fmt.Errorf("%w (%s): wait for it to finish, or stop it; its lock is %s", ErrHeld, h, name)
			}
			return nil, fmt.Errorf("%w: wait for it to finish, or stop it; its lock is %s", ErrHeld, name)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	host, _ := os.Hostname()
	h := Holder{PID: os.Getpid(), Host: host, Command: strings.Join(os.Args, " "), Since: time.Now(), Storage: id}
	b, _ := json.Marshal(h)
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(b, 0)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing releases the flock
	l.f = nil
	return err
}

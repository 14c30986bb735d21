package runlock

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestAcquire(t *testing.T) {
	Dir = t.TempDir()
	a, err := Acquire("filesystem rootdirectory=/srv/registry")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire("filesystem rootdirectory=/srv/registry")
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second Acquire: err = %v, want ErrHeld naming this process", err)
	}
	other, err := Acquire("s3 bucket=b rootdirectory=p")
	if err != nil {
		t.Fatalf("another storage is locked too: %v", err)
	}
	other.Release()
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	b, err := Acquire("filesystem rootdirectory=/srv/registry")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	b.Release()
}

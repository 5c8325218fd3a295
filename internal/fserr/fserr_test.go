package fserr

import (
	"errors"
	"os"
	"testing"
)

func TestCause(t *testing.T) {
	_, err := os.Open("/nonexistent/file")
	if got := Cause(err); !errors.Is(got, os.ErrNotExist) || got.Error() != "no such file or directory" {
		t.Errorf("Cause(open error) = %v", got)
	}
	err = os.Rename("/nonexistent/a", "/nonexistent/b")
	if got := Cause(err); got.Error() != "no such file or directory" {
		t.Errorf("Cause(link error) = %v", got)
	}
	plain := errors.New("plain")
	if Cause(plain) != plain {
		t.Error("Cause changed an error without a wrapper")
	}
}

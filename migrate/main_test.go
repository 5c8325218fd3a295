package migrate_test

import (
	"testing"

	"github.com/treeshift/treeshift/internal/faulttest"
)

func TestMain(m *testing.M) { faulttest.Main(m) }

package audiofork

import (
	"testing"

	"github.com/callscribe/callscribe/internal/leaktest"
)

// Every goroutine the tests start is gone when they end.
func TestMain(m *testing.M) { leaktest.Main(m) }

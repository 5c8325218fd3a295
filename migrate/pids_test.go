package migrate

import "testing"

func TestSamePids(t *testing.T) {
	st := func(up bool, pid int) saved {
		return saved{Live: savedLive{Services: []savedLiveService{{Name: "idle"}, {Name: "d", Up: up, Pid: pid}}}}
	}
	for _, tc := range []struct {
		want, got saved
		msg       string
	}{
		{st(true, 10), st(true, 10), ""},
		{st(false, 0), st(true, 11), ""}, // not a promise about down services
		{st(true, 10), st(true, 11), "service d of tree t was up with pid 10 and is now up with pid 11"},
		{st(true, 10), st(false, 0), "service d of tree t was up and is now down"},
	} {
		if got := samePids("t", tc.want, tc.got); got != tc.msg {
			t.Errorf("samePids = %q, want %q", got, tc.msg)
		}
	}
}

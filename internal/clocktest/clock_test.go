package clocktest

import (
	"testing"
	"time"
)

func TestShiftedRunsAndAdvances(t *testing.T) {
	var s Shifted
	before := time.Now()
	if got := s.Now(); got.Before(before) || got.Sub(before) > time.Minute {
		t.Fatalf("zero Shifted.Now = %v, want about %v", got, before)
	}
	s.Advance(time.Hour)
	got := s.Now()
	if d := got.Sub(time.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("after Advance(1h) Now is %v ahead of the real clock, want about 1h", d)
	}
	time.Sleep(2 * time.Millisecond)
	if !s.Now().After(got) {
		t.Fatal("Shifted stood still; it must run with the real clock")
	}
}

func TestClockStandsStill(t *testing.T) {
	c := New(time.Time{})
	a := c.Now()
	time.Sleep(2 * time.Millisecond)
	if !c.Now().Equal(a) {
		t.Fatal("Clock moved without Advance")
	}
	c.Advance(time.Second)
	if got := c.Now().Sub(a); got != time.Second {
		t.Fatalf("Advance(1s) moved the clock by %v", got)
	}
}

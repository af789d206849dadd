package main

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

func TestPcapOfRTP(t *testing.T) {
	b := pcapOfRTP(make([]byte, 160*10+50))
	le := binary.LittleEndian
	if le.Uint32(b) != 0xa1b2c3d4 || le.Uint32(b[20:]) != 1 {
		t.Fatal("bad pcap header")
	}
	off, n := 24, 0
	for off < len(b) {
		usec := le.Uint32(b[off:])*1000000 + le.Uint32(b[off+4:])
		size := int(le.Uint32(b[off+8:]))
		frame := b[off+16 : off+16+size]
		if usec != uint32(n)*20000 {
			t.Errorf("packet %d at %d us", n, usec)
		}
		ip := frame[14:34]
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(ip[i])<<8 | uint32(ip[i+1])
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		if sum != 0xffff {
			t.Errorf("packet %d: IP checksum", n)
		}
		var p rtp.Packet
		if err := p.Unmarshal(frame[42:]); err != nil || p.SequenceNumber != uint16(n) || len(p.Payload) != 160 {
			t.Errorf("packet %d: %v %+v", n, err, p.Header)
		}
		off += 16 + size
		n++
	}
	if n != 10 {
		t.Fatalf("%d packets, want 10 (the last partial frame dropped)", n)
	}
}

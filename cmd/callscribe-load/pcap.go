package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"

	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/callscribe/callscribe/media"
)

// pcapMain writes a WAV file as a pcap of 20 ms PCMU RTP packets on
// loopback, the form sipp's play_pcap_audio sends.
func pcapMain(args []string) error {
	fs := flag.NewFlagSet("pcap", flag.ContinueOnError)
	in := fs.String("in", "", "WAV file (any rate; resampled to 8 kHz)")
	out := fs.String("out", "", "pcap file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return fmt.Errorf("pcap: -in and -out are required")
	}
	a, err := media.ReadWAVFile(*in)
	if err != nil {
		return err
	}
	x := a.Samples
	if a.SampleRate != 8000 {
		if x, err = media.Resample(x, a.SampleRate, 8000); err != nil {
			return err
		}
	}
	pcm, err := pcmuBytes(x)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, pcapOfRTP(pcm), 0o644)
}

func pcmuBytes(x []float32) ([]byte, error) {
	enc := make([]byte, len(x))
	for i, v := range x {
		enc[i] = g711.EncodeUlawFrame(int16(max(-1, min(1, v)) * 32767))
	}
	return enc, nil
}

// pcapOfRTP frames payload as RTP/UDP/IPv4/Ethernet packets, 20 ms apart.
func pcapOfRTP(pcmu []byte) []byte {
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint32(b, 0xa1b2c3d4) // pcap magic, microsecond timestamps
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 65535)
	b = le.AppendUint32(b, 1) // Ethernet
	for k := 0; (k+1)*160 <= len(pcmu); k++ {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(k), Timestamp: uint32(160 * k), SSRC: 0x5eed},
			Payload: pcmu[160*k : 160*(k+1)]}
		raw, _ := p.Marshal()
		udp := make([]byte, 8)
		binary.BigEndian.PutUint16(udp[0:], 6000)
		binary.BigEndian.PutUint16(udp[2:], 6002)
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(raw)))
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(raw)))
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		frame := append(append(append([]byte{0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 8, 0}, ip...), udp...), raw...)
		us := uint32(k) * 20000
		b = le.AppendUint32(b, us/1000000)
		b = le.AppendUint32(b, us%1000000)
		b = le.AppendUint32(b, uint32(len(frame)))
		b = le.AppendUint32(b, uint32(len(frame)))
		b = append(b, frame...)
	}
	return b
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

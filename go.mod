module github.com/callscribe/callscribe

go 1.26.8

require (
	github.com/pion/opus v0.1.0 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	github.com/pion/rtp v1.10.6 // indirect
	github.com/yalue/onnxruntime_go v1.27.0 // indirect
	github.com/zaf/g711 v1.4.0 // indirect
)

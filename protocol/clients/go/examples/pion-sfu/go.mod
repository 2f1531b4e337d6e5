module github.com/sfu-config/sfu-config/protocol/clients/go/examples/pion-sfu

go 1.19

require (
	github.com/gorilla/websocket v1.5.0
	github.com/pion/ice/v2 v2.3.1
	github.com/pion/interceptor v0.1.12
	github.com/pion/rtcp v1.2.10
	github.com/pion/webrtc/v3 v3.1.56
	github.com/sfu-config/sfu-config/protocol/clients/go v0.0.0
)

replace github.com/sfu-config/sfu-config/protocol/clients/go => ../..

module github.com/sfu-config/sfu-config/protocol/clients/go

go 1.19

require github.com/gorilla/websocket v1.5.0

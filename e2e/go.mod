module github.com/clickstream/clickstream/e2e

go 1.26.8

replace github.com/clickstream/clickstream/services => ../services

replace github.com/clickstream/clickstream/schemas => ../schemas

replace github.com/clickstream/clickstream/collector => ../collector

replace github.com/clickstream/clickstream/validator => ../validator

replace github.com/clickstream/clickstream/lakewriter => ../lakewriter

replace github.com/clickstream/clickstream/compactor => ../compactor

require (
	github.com/clickstream/clickstream/schemas v0.0.0-00010101000000-000000000000
	github.com/gorilla/websocket v1.5.3
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/trinodb/trino-go-client v1.1.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260819154853-08b0e4226688 // indirect
)

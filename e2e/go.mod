module github.com/clickstream/clickstream/e2e

go 1.26.8

replace github.com/clickstream/clickstream/services => ../services

replace github.com/clickstream/clickstream/schemas => ../schemas

replace github.com/clickstream/clickstream/collector => ../collector

replace github.com/clickstream/clickstream/validator => ../validator

replace github.com/clickstream/clickstream/lakewriter => ../lakewriter

replace github.com/clickstream/clickstream/compactor => ../compactor

require github.com/trinodb/trino-go-client v1.1.0 // indirect

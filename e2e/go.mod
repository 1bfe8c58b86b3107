module github.com/clickstream/clickstream/e2e

go 1.26.8

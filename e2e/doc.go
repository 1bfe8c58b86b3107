// Package e2e holds the tests of the whole pipeline: in process against kfake and a local lake,
// and against the real stack (Kafka, HDFS, Hive Metastore, Trino, Spark) started by deploy/local.
package e2e

#!/usr/bin/env python3
"""Real calls to a Hive Metastore over Thrift (binary protocol, buffered transport), standard library only.

Used by stack.sh as the metastore's health check and by smoke.sh.

usage: hms_ping.py [--host 127.0.0.1] [--port 9083] [--timeout 10]
           prints the database names (get_all_databases), one per line
       hms_ping.py ... --table DB.TABLE
           prints the table as JSON (get_table_req, the call Hive 4 keeps; get_table is gone):
           {"db": ..., "table": ..., "tableType": ..., "location": ..., "inputFormat": ...,
            "serde": ..., "parameters": {...}, "partitionKeys": [...], "columns": [...]}
Exits 1 with the error on stderr on any failure (including a MetaException / NoSuchObjectException).
"""
import argparse
import json
import socket
import struct
import sys

T_STOP, T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64, T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST = (
    0, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15)


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def take(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("metastore closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def string(self):
        return self.take(self.unpack("!i", 4)).decode("utf-8", "replace")

    def value(self, ttype):
        """Decode any Thrift value; structs become {field_id: value}."""
        if ttype == T_BOOL:
            return self.unpack("!b", 1) != 0
        if ttype == T_BYTE:
            return self.unpack("!b", 1)
        if ttype == T_DOUBLE:
            return self.unpack("!d", 8)
        if ttype == T_I16:
            return self.unpack("!h", 2)
        if ttype == T_I32:
            return self.unpack("!i", 4)
        if ttype == T_I64:
            return self.unpack("!q", 8)
        if ttype == T_STRING:
            return self.string()
        if ttype == T_STRUCT:
            out = {}
            while True:
                ft = self.unpack("!b", 1)
                if ft == T_STOP:
                    return out
                fid = self.unpack("!h", 2)
                out[fid] = self.value(ft)
        if ttype == T_MAP:
            kt, vt, n = self.unpack("!b", 1), self.unpack("!b", 1), self.unpack("!i", 4)
            return {self.value(kt): self.value(vt) for _ in range(n)}
        if ttype in (T_SET, T_LIST):
            et, n = self.unpack("!b", 1), self.unpack("!i", 4)
            return [self.value(et) for _ in range(n)]
        raise ValueError("unknown thrift type %d" % ttype)


def s_string(fid, v):
    b = v.encode("utf-8")
    return struct.pack("!bh", T_STRING, fid) + struct.pack("!i", len(b)) + b


def s_struct(fid, body):
    return struct.pack("!bh", T_STRUCT, fid) + body + bytes([T_STOP])


def call(host, port, timeout, method, args_body):
    """Send one CALL and return the reply struct as {field_id: value}; raise on exceptions."""
    name = method.encode()
    msg = struct.pack("!I", 0x80010001) + struct.pack("!i", len(name)) + name + struct.pack("!i", 1)
    msg += args_body + bytes([T_STOP])
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(msg)
        r = Reader(sock)
        version = r.unpack("!i", 4) & 0xFFFFFFFF
        if version & 0xFFFF0000 != 0x80010000:
            raise ValueError("not a strict binary Thrift reply: 0x%08x" % version)
        mtype = version & 0xFF
        r.string()  # method name
        r.unpack("!i", 4)  # sequence id
        reply = r.value(T_STRUCT)
    if mtype == 3:  # TApplicationException {1: message, 2: type}
        raise RuntimeError("TApplicationException: %s" % reply.get(1))
    for fid, v in reply.items():
        if fid != 0:  # declared exceptions (MetaException, NoSuchObjectException ...) {1: message}
            raise RuntimeError("%s (exception field %d)" % (v.get(1) if isinstance(v, dict) else v, fid))
    if 0 not in reply:
        raise RuntimeError("empty reply to %s" % method)
    return reply[0]


def get_all_databases(host, port, timeout):
    return call(host, port, timeout, "get_all_databases", b"")


def get_table(host, port, timeout, db, table):
    # get_table_req(GetTableRequest{1: dbName, 2: tblName}) -> GetTableResult{1: Table}
    res = call(host, port, timeout, "get_table_req", s_struct(1, s_string(1, db) + s_string(2, table)))
    t = res[1]
    sd = t.get(7, {})
    serde = sd.get(7, {})

    def fields(lst):
        return [{"name": f.get(1), "type": f.get(2)} for f in lst or []]
    # Table: 1 tableName, 2 dbName, 7 sd, 8 partitionKeys, 9 parameters, 12 tableType
    # StorageDescriptor: 1 cols, 2 location, 3 inputFormat, 4 outputFormat, 7 serdeInfo{2 serializationLib}
    return {"db": t.get(2), "table": t.get(1), "tableType": t.get(12), "location": sd.get(2),
            "inputFormat": sd.get(3), "outputFormat": sd.get(4), "serde": serde.get(2),
            "parameters": t.get(9, {}), "partitionKeys": fields(t.get(8)), "columns": fields(sd.get(1))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9083)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--table", help="DB.TABLE: print the table (get_table_req) as JSON")
    a = ap.parse_args()
    try:
        if a.table:
            db, _, tbl = a.table.partition(".")
            print(json.dumps(get_table(a.host, a.port, a.timeout, db, tbl), sort_keys=True))
        else:
            for name in get_all_databases(a.host, a.port, a.timeout):
                print(name)
    except Exception as e:  # noqa: BLE001 - a probe reports any failure the same way
        print("hms_ping: %s" % e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

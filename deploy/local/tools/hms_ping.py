#!/usr/bin/env python3
"""Call get_all_databases on a Hive Metastore over Thrift (binary protocol, buffered transport).

A real metastore call with no dependency beyond the standard library, used by stack.sh as the
metastore's health check and by smoke.sh. Prints the database names, one per line; exits 1 on
any error.

usage: hms_ping.py [host] [port] [timeout_seconds]
"""
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

    def i8(self):
        return struct.unpack("!b", self.take(1))[0]

    def i16(self):
        return struct.unpack("!h", self.take(2))[0]

    def i32(self):
        return struct.unpack("!i", self.take(4))[0]

    def string(self):
        return self.take(self.i32()).decode("utf-8", "replace")

    def skip(self, ttype):
        sizes = {T_BOOL: 1, T_BYTE: 1, T_DOUBLE: 8, T_I16: 2, T_I32: 4, T_I64: 8}
        if ttype in sizes:
            self.take(sizes[ttype])
        elif ttype == T_STRING:
            self.string()
        elif ttype == T_STRUCT:
            self.struct(lambda fid, ft: self.skip(ft))
        elif ttype == T_MAP:
            kt, vt, n = self.i8(), self.i8(), self.i32()
            for _ in range(n):
                self.skip(kt)
                self.skip(vt)
        elif ttype in (T_SET, T_LIST):
            et, n = self.i8(), self.i32()
            for _ in range(n):
                self.skip(et)
        else:
            raise ValueError("unknown thrift type %d" % ttype)

    def struct(self, on_field):
        while True:
            ftype = self.i8()
            if ftype == T_STOP:
                return
            on_field(self.i16(), ftype)


def get_all_databases(host, port, timeout):
    name = b"get_all_databases"
    msg = struct.pack("!I", 0x80010001) + struct.pack("!i", len(name)) + name + struct.pack("!i", 1)
    msg += bytes([T_STOP])  # empty args struct
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(msg)
        r = Reader(sock)
        version = r.i32() & 0xFFFFFFFF
        if version & 0xFFFF0000 != 0x80010000:
            raise ValueError("not a strict binary Thrift reply: 0x%08x" % version)
        mtype = version & 0xFF
        r.string()  # method name
        r.i32()  # sequence id
        result = {"dbs": None, "error": None}
        if mtype == 3:  # TApplicationException
            def on_exc(fid, ftype):
                if fid == 1 and ftype == T_STRING:
                    result["error"] = r.string()
                else:
                    r.skip(ftype)
            r.struct(on_exc)
            raise RuntimeError("TApplicationException: %s" % result["error"])

        def on_field(fid, ftype):
            if fid == 0 and ftype == T_LIST:
                et, n = r.i8(), r.i32()
                result["dbs"] = [r.string() for _ in range(n)] if et == T_STRING else None
            elif fid == 1 and ftype == T_STRUCT:
                msgs = []
                r.struct(lambda f, t: msgs.append(r.string()) if t == T_STRING else r.skip(t))
                result["error"] = "MetaException: " + " ".join(msgs)
            else:
                r.skip(ftype)
        r.struct(on_field)
        if result["error"]:
            raise RuntimeError(result["error"])
        if result["dbs"] is None:
            raise RuntimeError("empty reply")
        return result["dbs"]


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9083
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    try:
        for db in get_all_databases(host, port, timeout):
            print(db)
    except Exception as e:  # noqa: BLE001 - a health probe reports any failure the same way
        print("hms_ping: %s" % e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

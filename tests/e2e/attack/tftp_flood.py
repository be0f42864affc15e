# TFTP request flood for attack_tftp_flood (run in the client namespace).
# argv: server, seconds, total sockets, source addresses...
# From `total` sockets spread over the source addresses (each its own source
# port), sends an RRQ with timeout=255 from every socket every 0.5 s for
# `seconds`, never ACKs, and prints what came back as JSON.
import json, select, socket, sys, time

server, seconds, total = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
sources = sys.argv[4:]
rrq = b"\x00\x01pxelinux.0\x00octet\x00timeout\x00255\x00blksize\x001468\x00"
socks = []
# epoll, not select: the flood's descriptors go past FD_SETSIZE (1024).
poller = select.epoll()
by_fd = {}
for i in range(total):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sources[i % len(sources)], 0))
    s.setblocking(False)
    socks.append(s)
    by_fd[s.fileno()] = s
    poller.register(s.fileno(), select.EPOLLIN)
counts = {"sent": 0, "busy": 0, "oack": 0, "data": 0, "other_error": 0,
          "oack_with_timeout": 0}
end = time.monotonic() + seconds
rounds = 0
while time.monotonic() < end and rounds < 100:
    rounds += 1
    for s in socks:
        try:
            s.sendto(rrq, (server, 69))
            counts["sent"] += 1
        except OSError:  # a full send buffer, or a queued ICMP error
            counts["send_errors"] = counts.get("send_errors", 0) + 1
    stop = time.monotonic() + 0.5
    while time.monotonic() < stop:
        for fd, _ in poller.poll(0.05):
            s = by_fd[fd]
            while True:
                try:
                    b = s.recv(2048)
                except OSError:
                    break
                op = b[1] if len(b) > 1 else 0
                if op == 5:
                    counts["busy" if b"server busy" in b else "other_error"] += 1
                elif op == 6:
                    counts["oack"] += 1
                    if b"timeout" in b.lower():
                        counts["oack_with_timeout"] += 1
                elif op == 3:
                    counts["data"] += 1
counts["rounds"] = rounds
print(json.dumps(counts))

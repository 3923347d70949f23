/**
 * A tiny UDP DNS server on 127.0.0.1 for pebble's `-dnsserver`: every A query
 * is answered with 127.0.0.1 (TTL 0), everything else with NOERROR and no
 * answers, so an ACME server validates any name against a loopback listener.
 */
import dgram from 'node:dgram';

export interface DnsResponder {
  port: number;
  /** Every queried name, lower case, without the trailing dot, in arrival order. */
  queries: string[];
  close(): Promise<void>;
}

/** The question's name and the offset just past QTYPE/QCLASS, or undefined when malformed. */
function parseQuestion(msg: Buffer): { name: string; end: number } | undefined {
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    if (offset >= msg.length) return undefined;
    const length = msg[offset]!;
    if (length === 0) break;
    if (length > 63 || offset + 1 + length > msg.length) return undefined; // no compression in questions
    labels.push(msg.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  const end = offset + 5;
  return end <= msg.length ? { name: labels.join('.').toLowerCase(), end } : undefined;
}

export function startDnsResponder(): Promise<DnsResponder> {
  const socket = dgram.createSocket('udp4');
  const queries: string[] = [];
  socket.on('message', (msg, peer) => {
    if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return;
    const question = parseQuestion(msg);
    if (!question) return;
    queries.push(question.name);
    const qtype = msg.readUInt16BE(question.end - 4);
    const qclass = msg.readUInt16BE(question.end - 2);
    const opcode = msg[2]! & 0x78;
    const answered = opcode === 0 && qtype === 1 && qclass === 1; // a QUERY for A, class IN
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // ID
    header[2] = 0x80 | opcode | 0x04 | (msg[2]! & 0x01); // QR, opcode, AA, RD copied
    header[3] = 0x80 | (opcode === 0 ? 0 : 4); // RA; RCODE NOERROR, or NOTIMP for anything but QUERY
    header.writeUInt16BE(1, 4); // QDCOUNT
    header.writeUInt16BE(answered ? 1 : 0, 6); // ANCOUNT
    // The answer: name -> offset 12, type A, class IN, TTL 0, 4 bytes of 127.0.0.1.
    const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
    const reply = Buffer.concat([header, msg.subarray(12, question.end), answered ? answer : Buffer.alloc(0)]);
    socket.send(reply, peer.port, peer.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      socket.on('error', () => {}); // a failed send to a vanished client is not the test's business
      socket.unref(); // a forgotten responder must not keep the test process alive
      resolve({
        port: socket.address().port,
        queries,
        close: () =>
          new Promise<void>((done) => {
            try {
              socket.close(() => done());
            } catch {
              done(); // already closed
            }
          }),
      });
    });
  });
}

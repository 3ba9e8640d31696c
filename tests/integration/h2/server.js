// An HTTP/2 webhook receiver over TLS for walhook's integration tests, on
// Node's built-in http2 module (HTTP/1.1 allowed too, so a fallback shows).
//   node server.js KEY.pem CERT.pem PORT
// Prints "listening" once bound, then one line per request:
//   <HTTP version> <session number (0 for HTTP/1.1)> <body bytes>
// and answers 200 {}.
'use strict';
const fs = require('fs');
const http2 = require('http2');

const [key, cert, port] = process.argv.slice(2);
let sessions = 0;
const server = http2.createSecureServer({
  key: fs.readFileSync(key),
  cert: fs.readFileSync(cert),
  allowHTTP1: true,
});
server.on('session', (session) => {
  session.walhookNumber = ++sessions;
});
server.on('request', (req, res) => {
  let bytes = 0;
  req.on('data', (chunk) => {
    bytes += chunk.length;
  });
  req.on('end', () => {
    const session = req.stream ? req.stream.session.walhookNumber : 0;
    console.log(`${req.httpVersion} ${session} ${bytes}`);
    res.writeHead(200, {'content-type': 'application/json'});
    res.end('{}');
  });
});
server.listen(Number(port), '127.0.0.1', () => console.log('listening'));

// HTTPS JSON API on node's https module (OpenSSL linked into the node
// executable) for the apiwarden TLS end-to-end tests.
// Usage: node nodehttps.js PORT CERT KEY [LOG]. Logs "METHOD PATH STATUS".
'use strict';
const https = require('https');
const fs = require('fs');

const [port, cert, key, log] = process.argv.slice(2);
const big = '{"blob":"' + 'n'.repeat(1100 * 1024) + '"}';

function send(req, res, status, obj, raw) {
  const body = raw !== undefined ? raw : (obj === undefined ? '' : JSON.stringify(obj));
  res.writeHead(status, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
  if (log) fs.appendFileSync(log, `${req.method} ${req.url.split('?')[0]} ${status}\n`);
}

const srv = https.createServer({key: fs.readFileSync(key), cert: fs.readFileSync(cert)}, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const path = req.url.split('?')[0];
    const m = path.match(/^\/items\/(\d+)$/);
    if (req.method === 'GET' && path === '/hello') {
      send(req, res, 200, {hello: 'world'});
    } else if (req.method === 'GET' && path === '/big') {
      send(req, res, 200, undefined, big);
    } else if (req.method === 'GET' && m) {
      if (Number(m[1]) < 100) send(req, res, 200, {id: Number(m[1])});
      else send(req, res, 404, {error: 'not found'});
    } else if (req.method === 'POST' && path === '/echo') {
      let v;
      try { v = JSON.parse(Buffer.concat(chunks).toString()); } catch (e) { return send(req, res, 400, {error: 'bad json'}); }
      send(req, res, 200, v);
    } else {
      send(req, res, 404, {error: 'no route'});
    }
  });
});
srv.keepAliveTimeout = 30000;
srv.listen(Number(port), '0.0.0.0');

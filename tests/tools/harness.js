'use strict';
// Helpers for tests that need dynalite and the fault proxy as real processes
// on loopback. Not a test file itself (node --test only picks *.test.js etc.).

const {spawn} = require('child_process');
const http = require('http');
const path = require('path');

const TOOLS = __dirname;

// Spawns `node <script> args...`, resolves {proc, port} once it prints
// `READY port=N`. Rejects if it exits first or after timeoutMs.
function startTool(script, args, {timeoutMs = 10000} = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [path.join(TOOLS, script), ...args],
        {stdio: ['ignore', 'pipe', 'pipe']});
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${script} not READY after ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /READY port=(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({proc, port: Number(m[1]), stderr: () => err});
      }
    });
    proc.stderr.on('data', (d) => (err += d));
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? sig}) before READY; stderr: ${err}`));
    });
  });
}

// Sends SIGTERM and resolves with the exit code (SIGKILL after timeoutMs).
function stopTool(tool, {timeoutMs = 5000} = {}) {
  return new Promise((resolve) => {
    if (!tool || tool.proc.exitCode !== null || tool.proc.signalCode !== null) {
      resolve(tool ? tool.proc.exitCode : null);
      return;
    }
    const timer = setTimeout(() => tool.proc.kill('SIGKILL'), timeoutMs);
    tool.proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      resolve(code ?? sig);
    });
    tool.proc.kill('SIGTERM');
  });
}

// Plain JSON HTTP call to a control endpoint.
function httpJson(port, method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request({host: '127.0.0.1', port, method, path: urlPath, agent: false,
      headers: data ? {'Content-Type': 'application/json', 'Content-Length': data.length} : {}},
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({status: res.statusCode, json, text});
      });
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

module.exports = {startTool, stopTool, httpJson};

#!/usr/bin/env node
// web-push-testing (npm, pinned in package-lock.json) as the push service of the tests, bound
// to 127.0.0.1 only: its own CLI listens on every interface and daemonizes (PEERS.md).
//
// Prints one JSON line {"port": N} once listening, and exits when its stdin closes (so it
// never outlives the test run that started it). Besides web-push-testing's own API
// (/subscribe, /notify/:clientHash, /get-notifications, /expire-subscription/:clientHash) it
// answers a few test-only calls:
//   POST /test/requests {clientHash}   -> {"data": [the push requests' headers, in order]}
//   POST /test/fail {clientHash, status, times, retryAfter?}
//                                      -> the next `times` pushes get `status` (429, 5xx...)
//   GET  /test/stats                   -> {"data": {"received", "delivered", "lastDeliveredAt"}}
//                                         (counts of pushes since start; epoch milliseconds)
// and sends CORS headers on /subscribe, so a page under test can stand in for the browser's
// push service binding with it.
'use strict';

const WebPushTestingServer = require('web-push-testing/src/server.js');
const {PushApiModel} = require('web-push-testing/src/PushApiModel.js');

const model = new PushApiModel();
const server = new WebPushTestingServer(model, 0);
const app = server._app;

const requests = new Map();
const failures = new Map();
const stats = {received: 0, delivered: 0, lastDeliveredAt: null};

app.use('/subscribe', (req, res, next) => {
	res.set('Access-Control-Allow-Origin', '*');
	res.set('Access-Control-Allow-Headers', 'Content-Type');
	res.set('Access-Control-Allow-Methods', 'POST');
	if (req.method === 'OPTIONS') {
		res.sendStatus(204);
		return;
	}

	next();
});

app.use('/notify/:clientHash', (req, res, next) => {
	const {clientHash} = req.params;
	stats.received += 1;
	const seen = requests.get(clientHash) || [];
	seen.push({
		at: Date.now(),
		ttl: req.get('TTL') ?? null,
		urgency: req.get('Urgency') ?? null,
		topic: req.get('Topic') ?? null,
		contentType: req.get('Content-Type') ?? null,
		contentEncoding: req.get('X-Content-Encoding') ?? null,
		contentLength: Number(req.get('Content-Length') || 0),
		authorization: (req.get('Authorization') || '').split(' ')[0],
	});
	requests.set(clientHash, seen);
	const failure = failures.get(clientHash);
	if (failure && failure.times > 0) {
		failure.times -= 1;
		if (failure.retryAfter !== undefined && failure.retryAfter !== null) {
			res.set('Retry-After', String(failure.retryAfter));
		}

		res.status(failure.status).send({reason: 'injected by the test'});
		return;
	}

	res.on('finish', () => {
		if (res.statusCode === 201) {
			stats.delivered += 1;
			stats.lastDeliveredAt = Date.now();
		}
	});
	next();
});

app.post('/test/requests', (req, res) => {
	res.status(200).send({data: requests.get(req.body.clientHash) || []});
});

app.post('/test/fail', (req, res) => {
	const {clientHash, status, times, retryAfter} = req.body;
	failures.set(clientHash, {status, times, retryAfter});
	res.status(200).send({data: {clientHash, status, times}});
});

app.get('/test/stats', (req, res) => {
	res.status(200).send({data: stats});
});

server.setRequestHandlers();

const listener = app.listen(0, '127.0.0.1', () => {
	const {port} = listener.address();
	// Endpoints handed out by /subscribe point here, at the address it really listens on.
	model.notifyUrl = `http://127.0.0.1:${port}/notify/`;
	process.stdout.write(JSON.stringify({port}) + '\n');
});
listener.keepAliveTimeout = 60000;
listener.on('error', error => {
	console.error(error);
	process.exit(1);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

#!/usr/bin/env node
// azurite (npm, pinned in package-lock.json): the Azure Storage Queue service of the tests, on
// 127.0.0.1 only and in memory. Started here rather than through its CLI because the CLI turns
// on telemetry (usage reports to Microsoft) unless told not to: nothing here may leave the
// machine, so the telemetry client is never even initialised.
//
// Listens on the port given as its first argument (default: any free one), prints one JSON line
// {"port": N} once listening, and exits when its stdin closes (so it never outlives the test run
// that started it).
'use strict';

const QueueConfiguration = require('azurite/dist/src/queue/QueueConfiguration.js').default;
const QueueServer = require('azurite/dist/src/queue/QueueServer.js').default;

const config = new QueueConfiguration(
	'127.0.0.1', // host
	Number(process.argv[2] || 0), // port
	undefined, // keep-alive timeout: the default
	undefined, // metadata DB path (unused in memory)
	undefined, // extent DB path (unused in memory)
	undefined, // persistence paths (unused in memory)
	false, // access log
	undefined, // access log stream
	false, // debug log
	undefined, // debug log path
	false, // loose mode
	true, // skip the API version check: the Python SDK may be newer than this Azurite
	'', // cert: plain http on loopback, as the development connection string expects
	'', // key
	'', // pfx password
	undefined, // oauth
	false, // disableProductStyleUrl
	true, // in-memory persistence
);

const server = new QueueServer(config);
server.start().then(() => {
	const url = new URL(server.getHttpServerAddress());
	process.stdout.write(JSON.stringify({port: Number(url.port)}) + '\n');
}, error => {
	console.error(error);
	process.exit(1);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

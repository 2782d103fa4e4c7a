#!/usr/bin/env node
// @vercel/cosmosdb-server (npm, pinned in package-lock.json) as the Cosmos DB of the tests,
// over HTTPS on 127.0.0.1 with keep-alive (its own CLI answers `Connection: close`, ~29 ops/s;
// kept alive it serves several hundred, PEERS.md).
//
// Listens on the port given as its first argument (default: any free one), prints one JSON line
// {"port": N} once listening, and exits when its stdin closes (so it never outlives the test run
// that started it).
//
// One patch, for a bug that would otherwise hide Herald's own handling: reading a document
// that does not exist answers 500 (a TypeError in the handler) where Cosmos DB answers 404.
// Herald does not use transactional batches (the server's are not atomic and reject the
// Python SDK's header-borne partition key), so that handler is left as it is.
'use strict';

const readDocument = require('@vercel/cosmosdb-server/lib/handler/read-document.js');
const {parsePartitionKey} = require('@vercel/cosmosdb-server/lib/utils/get-partition-from-header.js');

const originalRead = readDocument.default;
readDocument.default = (account, req, res, params) => {
	const collection = account.database(params.dbId).collection(params.collId);
	if (collection.read()) {
		const header = req.headers['x-ms-documentdb-partitionkey'];
		const raw = Array.isArray(header) ? header[0] : header;
		let key = params.docId;
		try {
			key = parsePartitionKey(raw, params.docId);
		} catch {}

		if (!collection.document(params.docId, key).read()) {
			res.statusCode = 404;
			return {code: 'NotFound', message: 'Entity with the specified id does not exist in the system.'};
		}
	}

	return originalRead(account, req, res, params);
};

// Loaded after the patch: the route table takes the handlers when it is built.
const {createHttpsServer} = require('@vercel/cosmosdb-server');

const server = createHttpsServer({keepAlive: true});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
	process.stdout.write(JSON.stringify({port: server.address().port}) + '\n');
});
server.on('error', error => {
	console.error(error);
	process.exit(1);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

#!/usr/bin/env node
// Validates a Teams app manifest with Microsoft's own validator (@microsoft/app-manifest,
// pinned in package-lock.json) against the JSON schema that package bundles for the manifest's
// `manifestVersion` -- never downloaded: ManifestUtil.validateManifest() would fetch `$schema`
// from the web (PEERS.md), so this loads build/json-schemas/teams/v<version>/ itself and calls
// ManifestUtil.validateManifestAgainstSchema(manifest, schema).
//
//   node validate-teams-manifest.js path/to/manifest.json
//
// Prints one JSON line {"manifestVersion", "schema", "errors": [...]} (schema: the bundled file
// used, relative to the package) and exits 0 when valid, 1 when invalid, 2 when the manifest
// cannot be read. Besides the schema's errors, a `$schema` that is not the official URL of the
// manifest's version is reported, since Teams tools pick the schema by it.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const {ManifestUtil} = require('@microsoft/app-manifest');

const packageDir = path.dirname(require.resolve('@microsoft/app-manifest/package.json'));
const schemasDir = path.join(packageDir, 'build', 'json-schemas', 'teams');

function report(result, code) {
	process.stdout.write(JSON.stringify(result) + '\n');
	process.exit(code);
}

function schemaFor(version) {
	if (typeof version !== 'string' || !/^(\d+\.\d+|devPreview)$/.test(version)) {
		return null;
	}

	const folder = version === 'devPreview' ? 'vDevPreview' : `v${version}`;
	const file = path.join(schemasDir, folder, 'MicrosoftTeams.schema.json');
	return fs.existsSync(file) ? file : null;
}

// The official addresses of a version's schema, with or without a locale in the path.
function schemaUrlMatches(url, version) {
	const folder = version === 'devPreview' ? 'vDevPreview' : `v${version}`;
	const pattern = new RegExp(
		'^https://developer\\.microsoft\\.com/(?:[a-z]{2}(?:-[a-z]{2})?/)?json-schemas/teams/'
		+ folder.replace('.', '\\.') + '/MicrosoftTeams\\.schema\\.json$',
		'i',
	);
	return pattern.test(url);
}

async function main() {
	const file = process.argv[2];
	if (!file) {
		report({errors: ['usage: validate-teams-manifest.js <manifest.json>']}, 2);
	}

	let manifest;
	try {
		manifest = JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
	} catch (error) {
		report({errors: [`cannot read ${file}: ${error.message}`]}, 2);
	}

	const version = manifest.manifestVersion;
	const schemaFile = schemaFor(version);
	if (schemaFile === null) {
		report({
			manifestVersion: version ?? null,
			schema: null,
			errors: [`/manifestVersion no schema bundled for ${JSON.stringify(version ?? null)}`],
		}, 1);
	}

	// The same clean-up @microsoft/app-manifest applies to schemas it loads itself: some
	// schema versions carry regex escapes (\a, \v) that JavaScript's RegExp rejects.
	const schema = JSON.parse(fs.readFileSync(schemaFile, 'utf8')
		.replace(/\\a/g, '\\u0007')
		.replace(/\\v/g, '\\u000b'));
	const errors = await ManifestUtil.validateManifestAgainstSchema(manifest, schema);
	if (manifest.$schema !== undefined && !schemaUrlMatches(String(manifest.$schema), version)) {
		errors.push(`/$schema is not the official schema URL of manifestVersion ${version}`);
	}

	report({
		manifestVersion: version,
		schema: path.relative(packageDir, schemaFile),
		errors,
	}, errors.length === 0 ? 0 : 1);
}

main().catch(error => {
	report({errors: [`validator failed: ${error.stack || error}`]}, 2);
});

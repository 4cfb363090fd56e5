"""The signer: the one process that holds key activation, and the narrow client every other room signs through.

`SigningService` holds the quorum secrets in memory and signs to-be-signed bytes for a named purpose;
`SignerServer` puts it behind a Unix socket (`mpki signer`); `SignerClient` speaks to that socket;
`SigningKeys` is what the CA and the status room hold: key descriptions and signatures, never a secret.
"""

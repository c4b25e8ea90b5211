"""Conformance of ADE runner images: read a pushed image's layers from the registry (no daemon)
and decide whether it is a valid runner; lint Dockerfiles for known breakages. Pure rules
(`filesystem`, `rules`, `lint`) apart from the registry I/O (`pipe`, `layers`, `image`)."""

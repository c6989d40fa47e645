"""Deployment artefacts: Dockerfiles, docker-compose.yml and the Kubernetes manifests."""

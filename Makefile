# dsobel: build, test, and deploy. Every target is a real command; the cloud
# targets run scripts/deploy.sh (see docs/deploy.md) and need GCP_PROJECT set.
#
#   make up                 full stack on this machine with Docker Compose
#   make deploy             cluster -> RabbitMQ/Redis -> apps -> worker VMs (GCP; GCP_STORE=memorystore,
#                           GCP_BATCH_BUCKETS=... as in docs/deploy.md)
#   make destroy            everything `make deploy` created (works from any partial state)
#   make validate-deploy    offline checks of deploy/ and a rehearsal of deploy/destroy (no cloud needed)

SHELL := /bin/bash
.DEFAULT_GOAL := help

COMPOSE := docker compose -f deploy/compose.yaml
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
OVERLAY ?= gke

.PHONY: help test ci lint validate-deploy up down images images-local secrets \
        deploy destroy infra k8s apps workers cluster run-stack

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

test: ## the project's tests
	cargo test --workspace

ci: ## everything CI runs: services, formatting, lints, docs, tests, fuzz build, deploy validators
	bash .ci/run

lint: ## formatting, clippy with warnings as errors, documentation with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

validate-deploy: ## offline validation of Terraform, Kubernetes, Dockerfiles, workflows; deploy/destroy rehearsal
	bash deploy/validate.sh

run-stack: ## release binary + local RabbitMQ/Redis with the ConfigMap's settings, one job through
	bash deploy/local/run-stack.sh

up: ## full stack with Docker Compose on http://127.0.0.1:8080/
	$(COMPOSE) up --build --wait
	@echo "dsobel is up: http://127.0.0.1:$${DSOBEL_HTTP_PORT:-8080}/"

down: ## stop the Compose stack (volumes are kept; add -v by hand to drop them)
	$(COMPOSE) down

images-local: ## build dsobel:local and dsobel-web:local (Compose, kind)
	docker build -f deploy/docker/dsobel.Dockerfile -t dsobel:local .
	docker build -f deploy/docker/nginx.Dockerfile -t dsobel-web:local .

images: ## build and push both images to Artifact Registry, tag IMAGE_TAG
	IMAGE_TAG=$(IMAGE_TAG) scripts/deploy.sh images

secrets: ## create the gitignored Secret env files of OVERLAY with random passwords
	scripts/gen-secrets.sh $(OVERLAY)

cluster: ## pipeline 1: VPC, GKE cluster, node pools, registry (Terraform)
	scripts/deploy.sh cluster

infra: ## pipeline 1.1: RabbitMQ and the store's two Redis roles on the infra pool (RabbitMQ only with GCP_STORE=memorystore)
	scripts/deploy.sh infra

apps: ## pipelines 1.2-1.4: build, push and roll out backend, worker, frontend
	IMAGE_TAG=$(IMAGE_TAG) scripts/deploy.sh apps

k8s: infra apps ## all Kubernetes objects (infra, then apps)

workers: ## pipeline 2: worker VMs (Terraform, managed instance group)
	IMAGE_TAG=$(IMAGE_TAG) scripts/deploy.sh workers

deploy: ## cluster -> infra services -> apps -> worker VMs
	IMAGE_TAG=$(IMAGE_TAG) scripts/deploy.sh all

destroy: ## remove worker VMs, Kubernetes objects (load balancers, volumes) and the cluster stack
	scripts/deploy.sh destroy

"""The dev loop: the Tiltfile contract, dev-up.sh, the workflow, the Dockerfiles and images."""

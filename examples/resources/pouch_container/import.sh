# A container is imported by its name (its containerd container ID).
terraform import pouch_container.example my-container

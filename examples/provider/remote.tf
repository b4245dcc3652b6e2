# A containerd host reached over SSH: Terraform runs anywhere (a laptop, CI,
# an HCP Terraform run); the containers and everything pouch does run on
# the host.
variable "ssh_private_key" {
  description = "Private key of root on the host (a sensitive workspace variable)."
  type        = string
  sensitive   = true
}

provider "pouch" {
  alias = "db1"
  host  = "ssh://root@db1.example.internal:22"

  ssh = {
    private_key = var.ssh_private_key
    # /etc/ssh/ssh_host_ed25519_key.pub on the host: pins its key.
    host_key   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPDJjXhLad8Kmj0wwfTvOJyieo0bCemXs/sHqViFFsf9"
    proxy_jump = "jump@bastion.example.internal:22"
  }
}

resource "pouch_container" "db" {
  provider = pouch.db1
  name     = "db"
  image    = "docker.io/library/postgres:17"
}

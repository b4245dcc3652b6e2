# The tag's digest in its registry, read at every plan (nothing pulled).
data "pouch_registry_image" "app" {
  name = "registry.example.internal:5000/team/app:stable"
}

# The image, pulled again when the tag moves. create_before_destroy lets
# the container move to the new image before the old one is removed.
resource "pouch_image" "app" {
  name          = data.pouch_registry_image.app.name
  pull_triggers = [data.pouch_registry_image.app.digest]

  lifecycle {
    create_before_destroy = true
  }
}

# Runs exactly that image, and upgrades in place when it changes.
resource "pouch_container" "app" {
  name  = "app"
  image = pouch_image.app.reference_with_digest
}

# An image built by the pipeline, saved as an archive, imported under the
# name given, and again whenever the archive is rebuilt.
variable "worker_archive" {
  description = "Path of the worker's archive (docker save, or skopeo copy ... oci-archive:FILE)."
  type        = string
}

resource "pouch_image" "built" {
  name           = "team/worker:build"
  source_archive = var.worker_archive
  pull_triggers  = [filesha256(var.worker_archive)]

  lifecycle {
    create_before_destroy = true
  }
}

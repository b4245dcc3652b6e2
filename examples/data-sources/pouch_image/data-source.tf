# The config of an image already on the host: here, to mount a volume at
# each path the image declares.
data "pouch_image" "db" {
  name = "registry.example.internal:5000/team/db:16"
}

resource "pouch_volume" "db" {
  for_each = toset(data.pouch_image.db.volumes)
  name     = "db${replace(each.value, "/", "-")}"
}

resource "pouch_container" "db" {
  name   = "db"
  image  = data.pouch_image.db.reference_with_digest
  mounts = [for path in data.pouch_image.db.volumes : { type = "volume", source = pouch_volume.db[path].name, target = path }]
}

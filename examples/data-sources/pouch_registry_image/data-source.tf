# The digest the tag has in its registry now (a manifest HEAD, nothing
# pulled). The container is pinned to it, and upgrades in place at the
# first apply after the tag moves.
data "pouch_registry_image" "app" {
  name = "registry.example.internal:5000/team/app:stable"
}

resource "pouch_container" "app" {
  name  = "app"
  image = data.pouch_registry_image.app.pinned_reference
}

# An image already on the host is imported by its reference; destroying
# the resource then leaves it there unless pouch stored it.
terraform import pouch_image.app registry.example.internal:5000/team/app:stable

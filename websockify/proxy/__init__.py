"""Target side: connecting to targets and relaying bytes to and from them."""

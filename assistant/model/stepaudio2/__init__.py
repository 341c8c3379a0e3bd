"""Step-Audio 2 mini: prompt building, token parsing and the engines that run it."""

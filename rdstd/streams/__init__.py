"""Multi-rate streams: sampling them onto one time grid (interpolate, slerp, hold, nearest) and a TF transform buffer.

Shared by the ROS backend, the converter and resampling; below the formats, independent of ROS."""

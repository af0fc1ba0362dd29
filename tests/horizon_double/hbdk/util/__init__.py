"""TEST DOUBLE of ``hbdk.util`` (Horizon Robotics' hbdk3): argument normalisation (``norm``, read_file id
20472558579) and child-process output relay (``process``, read_file id 20758249515)."""

/// The release of vtictl's three programs (`vtictl version`, `vtid --version`, `vti-updown
/// --version`), and of the Debian package: `Scripts/package` takes its version from what the built
/// `vtictl version` prints. The one place to change it.
public let vtictlRelease = "0.3.0"

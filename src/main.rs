fn main() {
    print!("{}", liftoff::crd::crd_yaml());
}

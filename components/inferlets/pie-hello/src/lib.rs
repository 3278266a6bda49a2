//! Written against Pie's published SDK (`inferlet` 0.2.0), unmodified: Crust
//! must run it as Pie would.

struct PieHello;

impl inferlet::api::Guest for PieHello {
    fn run() -> Result<(), String> {
        let arguments = inferlet::get_arguments();
        println!("pie instance {}", inferlet::get_instance_id());
        println!("pie arguments {}", arguments.join(" "));
        inferlet::set_return(&format!("pie says hi to {}", arguments.join(",")));
        Ok(())
    }
}

inferlet::api::export!(PieHello with_types_in inferlet::api);

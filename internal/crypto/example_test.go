package crypto_test

import (
	"fmt"

	"scanagent/internal/crypto"
)

// The platform document's example: appId "01" makes the key
// "0000000000000001"; ECB and base64 are the defaults.
func ExampleCipher_Encrypt() {
	c, err := crypto.New("01", crypto.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	text, _ := c.Encrypt("33010219900101123X")
	fmt.Println(text)
	// Output: GGX7LbvctIvkW/1lTUmQr2Od6uzbfHL8iBlSg+FOM78=
}
